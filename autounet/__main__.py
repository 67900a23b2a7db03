"""Allow ``python -m autounet``."""

if __name__ == "__main__":
    # Imported only when run as the program: worker processes started with 'spawn' re-import this module
    # under another name, and should not pay for loading the whole CLI.
    from autounet.cli.main import main

    main()

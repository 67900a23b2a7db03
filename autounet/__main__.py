"""Allow ``python -m autounet``."""

from autounet.cli.main import main

if __name__ == "__main__":
    main()

"""autounet: labelled biomedical images in, a cross-validated U-Net ensemble out.

The package is laid out in the order data flows through it::

    io -> dataset -> fingerprint -> planning -> preprocessing -> network
       -> training -> inference -> evaluation

and ``autounet.cli`` is a thin command-line layer over plain functions in those
stages.
"""

__version__ = "0.1.0"

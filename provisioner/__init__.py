"""mailauth-provisioner: SPF, DKIM, DMARC and MX records for a sending platform's customers."""

__version__ = "0.1.0"

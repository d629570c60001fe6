"""The octoDNS adapter: the only code in the project that imports octodns.

- :mod:`.source`: the expanded records as an octoDNS source (also for plain ``octodns-sync``);
- :mod:`.ownership` and :mod:`.guard`: processors that keep the customer's records untouched;
- :mod:`.targets`: octoDNS providers from ``provisioner.yaml``'s ``targets``;
- :mod:`.engine`: plan and apply, with octoDNS's checksum.
"""

"""DKIM keys (DESIGN §9): policy, state, the rotation's decisions (pure), and the key stores,
key generation and the effects around them (adapters).

Pure: :mod:`.policy`, :mod:`.state`, :mod:`.lifecycle`. Adapters: :mod:`.crypto` (the
``cryptography`` package), :mod:`.store` (local directory), :mod:`.secretsmanager` (boto3),
:mod:`.service` (performs the decisions), :mod:`.signing` (the mail platform's configuration,
dkimpy).
"""

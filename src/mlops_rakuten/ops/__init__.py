"""Operations around the repository: registry, experiments and sweeps, remote, raw data, PR report.

Every ``dvc``/``git``/``gto`` subprocess goes through ``commands``; every hash read from
dvc.lock or a ``.dvc`` pointer goes through ``dvcfiles``.
"""

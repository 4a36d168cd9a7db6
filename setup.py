# A shim for Beam's --setup_file on Dataflow, which runs `python setup.py sdist`; metadata is in setup.cfg.
__import__("setuptools").setup()

"""Toy extensions, each one file plus its registration, that tests/test_extensions.py plugs in."""

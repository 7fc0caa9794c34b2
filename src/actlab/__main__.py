"""`python -m actlab` is the `actlab` command."""

from actlab.cli import main

if __name__ == "__main__":  # worker processes import this module too, and must not rerun the command
    raise SystemExit(main())

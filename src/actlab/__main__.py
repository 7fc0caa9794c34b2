"""`python -m actlab` is the `actlab` command."""

from actlab.cli import main

raise SystemExit(main())

"""Command-line entry: ``python run_search.py [COMMAND] [OPTIONS]`` (see --help)."""

import sys

from search.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""`python -m robbench`: the same command line as the `robbench` script."""

from robbench.cli import main

if __name__ == "__main__":
    main()

"""`python -m w2v2cli ...` is the same as the `w2v2` console script."""

from w2v2cli.cli.app import main

if __name__ == "__main__":
    main()

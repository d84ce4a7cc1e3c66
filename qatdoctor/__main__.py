"""`python -m qatdoctor`."""

from qatdoctor.cli import main

if __name__ == "__main__":
    main()

"""``python -m geogan`` runs the command line (and ``torchrun -m geogan`` later)."""

from geogan.cli.main import main

main()

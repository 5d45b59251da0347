"""python -m robbench.cli"""

from robbench.cli import main

main()

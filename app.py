"""Start the web app: `python app.py [--port 8000 ...]` is `qa serve` (see `qa serve --help`).

Serves the chat UI, the widget and the JSON API on http://127.0.0.1:7860, answering from ./index,
which is built from ./corpus first if there is none.
"""

import sys

from qa.cli import main

if __name__ == "__main__":
    main(["serve", *sys.argv[1:]], prog_name="app.py")

"""The web face: a Flask app over the runtime services, the REST API (`api`) and the HTML pages (`pages`).

`create_app(platform)` is the only entry point; everything a page or an endpoint does is one call to
a runtime service, so the API, the pages and the CLI behave the same.
"""

from .app import create_app as create_app

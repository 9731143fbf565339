"""The report engine: `kind: report` templates compiled into SQL and run within the caller's data scope.

`run_report(platform, definition(metadata, name), access=..., filters=...)` is the one way in; `charts`
draws a result as SVG; `personal` keeps the reports users build and save; `compare` puts two runs side by
side.
"""

from . import charts as charts
from . import compare as compare
from . import personal as personal
from .compile import Dimension as Dimension
from .compile import Measure as Measure
from .run import Column as Column
from .run import ReportResult as ReportResult
from .run import available as available
from .run import definition as definition
from .run import run_report as run_report

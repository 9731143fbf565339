"""The records service: create, create_many, get, update, delete, list and history of any object."""

from .service import BulkResult as BulkResult
from .service import Page as Page
from .service import Records as Records
from .service import RowError as RowError

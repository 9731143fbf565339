"""YAML metadata to validated, immutable definitions; pure: no database, no Flask.

`load_metadata(default_layers(root, templates, custom, apps))` is the one way in; everything else
reads the `Metadata` it returns. `template_order` holds the industry templates a site enables to their
manifests first.
"""

from ._build import build_definition as build_definition
from .fieldtypes import FIELD_TYPES as FIELD_TYPES
from .fieldtypes import SYSTEM_FIELDS as SYSTEM_FIELDS
from .industry_templates import MANIFEST as MANIFEST
from .industry_templates import Adds as Adds
from .industry_templates import Manifest as Manifest
from .industry_templates import available_templates as available_templates
from .industry_templates import read_manifest as read_manifest
from .industry_templates import template_adds as template_adds
from .industry_templates import template_name as template_name
from .industry_templates import template_order as template_order
from .loader import BASE_LAYER as BASE_LAYER
from .loader import Locator as Locator
from .loader import check_definition as check_definition
from .loader import default_layers as default_layers
from .loader import load_metadata as load_metadata
from .model import ALL_FIELDS as ALL_FIELDS
from .model import FIELD_LEVELS as FIELD_LEVELS
from .model import SUMMARY_KEY_TYPES as SUMMARY_KEY_TYPES
from .model import ApprovalFlow as ApprovalFlow
from .model import ApprovalStep as ApprovalStep
from .model import Chart as Chart
from .model import Dashboard as Dashboard
from .model import DefaultMatch as DefaultMatch
from .model import Definition as Definition
from .model import FieldDef as FieldDef
from .model import Flow as Flow
from .model import FlowTrigger as FlowTrigger
from .model import Label as Label
from .model import LayoutSection as LayoutSection
from .model import Lifecycle as Lifecycle
from .model import ListView as ListView
from .model import MatchKey as MatchKey
from .model import Metadata as Metadata
from .model import NavGroup as NavGroup
from .model import NavItem as NavItem
from .model import ObjectDef as ObjectDef
from .model import Option as Option
from .model import Picklist as Picklist
from .model import Report as Report
from .model import ReportDimension as ReportDimension
from .model import ReportFolder as ReportFolder
from .model import ReportMeasure as ReportMeasure
from .model import ReportPeriod as ReportPeriod
from .model import ReportSummary as ReportSummary
from .model import RoleDef as RoleDef
from .model import RollupSpec as RollupSpec
from .model import Rule as Rule
from .model import RuntimeFilter as RuntimeFilter
from .model import SalesProcess as SalesProcess
from .model import Source as Source
from .model import Stage as Stage
from .model import State as State
from .model import Task as Task
from .model import Transition as Transition
from .model import TypedOverride as TypedOverride
from .model import ValidationRule as ValidationRule
from .model import VCardImport as VCardImport
from .model import Widget as Widget
from .model import plain as plain
from .problems import MetadataError as MetadataError
from .problems import Problem as Problem

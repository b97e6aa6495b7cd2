"""Agreement statistics (being split into named parts; see core.agreement.report)."""

from core.agreement.report import *  # noqa: F403
from core.agreement.report import _pooled_table  # noqa: F401

"""Search spaces: the shipped YAML files beside this package, and the loader that validates
a space before anything starts (docs/studies.md#writing-a-space has the format).

The face other code imports; each job lives in its own module:
  space.py      the Space record, a grid's trials, `count`
  validate.py   `parse`: every key of a space file checked, with a fix in each error
  files.py      `load` a space file or a shipped space by name (`paper`, `smoke`, ...)
  sampling.py   Optuna's define-by-run `suggest` and the `distributions` it samples from
"""

from search_spaces.files import HERE, load, resolve_path
from search_spaces.sampling import active, distribution, distributions, suggest
from search_spaces.space import Space, SpaceError, count
from search_spaces.validate import PARAM_KEYS, SAMPLERS, TOP_KEYS, parse

_active = active  # the name study/search/sync.py calls it by

__all__ = [
    "HERE",
    "PARAM_KEYS",
    "SAMPLERS",
    "TOP_KEYS",
    "Space",
    "SpaceError",
    "active",
    "count",
    "distribution",
    "distributions",
    "load",
    "parse",
    "resolve_path",
    "suggest",
]

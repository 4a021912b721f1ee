"""circus.ctl installs as a portion of the circus namespace."""

import circus
import circus.ctl


def test_portion_is_inside_namespace() -> None:
    assert circus.__file__ is None
    assert circus.ctl.__file__ is not None

"""circus.process installs as a portion of the circus namespace."""

import circus
import circus.process


def test_portion_is_inside_namespace() -> None:
    assert circus.__file__ is None
    assert circus.process.__file__ is not None

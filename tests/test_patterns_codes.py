"""Pattern codes, pictures and library validation."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rramjax.errors import ConfigError
from rramjax.patterns import (code_to_mask, default_patdnn_library, library_matrix, mask_to_code,
                              pattern_codes, pattern_picture, pattern_size, validate_library)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([(1, 1), (2, 3), (4, 4)]), st.integers(0, 2**31 - 1))
def test_codes_round_trip_through_masks(shape, seed):
  cin, cout = shape
  mask = np.random.default_rng(seed).integers(0, 2, (3, 3, cin, cout))
  codes = np.asarray(pattern_codes(mask))
  assert codes.shape == (cin, cout)
  square = np.asarray(code_to_mask(codes, square=True))  # (cin, cout, 3, 3) = [c, f, kh, kw]
  np.testing.assert_array_equal(np.transpose(square, (2, 3, 0, 1)), mask)
  np.testing.assert_array_equal(mask_to_code(code_to_mask(codes)), codes)


def test_position_index_is_3kh_plus_kw():
  w = np.zeros((3, 3, 1, 1))
  w[1, 2, 0, 0] = 0.5  # kh=1, kw=2 -> i=5
  assert int(pattern_codes(w)[0, 0]) == 1 << 5
  assert pattern_picture(1 << 5) == "...\n..#\n..."
  assert int(pattern_codes(np.zeros((3, 3, 1, 1)))[0, 0]) == 0


def test_library_matrix_rows_match_codes():
  lib = (16, 511, 1)
  np.testing.assert_array_equal(library_matrix(lib).sum(1), [1, 9, 1])
  assert library_matrix(lib)[0, 4] == 1


def test_default_patdnn_library_is_eight_four_entry_patterns_with_centre():
  lib = default_patdnn_library()
  assert len(lib) == 8 and len(set(lib)) == 8
  assert all(pattern_size(c) == 4 and c >> 4 & 1 for c in lib)


@pytest.mark.parametrize("library, message", [
    ([], "at least one"), ([0, 3], "1..511"), ([512], "1..511"), ([3, 3], "repeat"),
    (list(range(1, 512)) + [1], "at most 511"), ([1.5], "integer"),
])
def test_bad_library_raises_config_error(library, message):
  with pytest.raises(ConfigError, match=message):
    validate_library(library)


def test_bad_shape_raises_config_error():
  with pytest.raises(ConfigError, match="HWIO"):
    pattern_codes(np.zeros((5, 5, 2, 2)))

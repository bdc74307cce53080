"""Our matrices are small: one BLAS thread is fastest, and avoids oversubscribing a busy CI box."""

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    with threadpool_limits(1):
        yield

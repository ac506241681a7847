"""The package-wide threading policy: one number of threads for BLAS and for the Numba kernels.

    training.set_num_threads(2)        # BLAS (via threadpoolctl) and Numba, for this process
    training.get_num_threads()         # threads the element-wise kernels use (calling thread)
    training.threads_info()            # what each library reports (dict)
    with training.threads(1): ...      # temporarily, restored on exit

Where the numbers live (nothing is stored here):

- **BLAS** (NumPy's OpenBLAS, and any other BLAS threadpoolctl finds): process-wide, set with
  ``threadpoolctl.threadpool_limits(n, user_api="blas")``.  Its start value comes from
  ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` (default: all cores).  SciPy's OpenBLAS,
  which Numba loads lazily on its first array-code compilation, is loaded first so the
  limit covers it; a BLAS another library loads after the call keeps its own default.
- **Numba**: ``numba.set_num_threads``, which is per calling thread and bounded by
  ``NUMBA_NUM_THREADS`` (read once at start-up; default: all cores).  A request above that bound
  is clamped to it (``threads_info()["numba_max"]``).  The dense engine's element-wise kernels
  (LIF forward/backward, BatchNorm, pooling) split their work over this many threads
  (:func:`parallel_chunks`); the event simulator's default ``n_threads`` is this number too.

With no call to :func:`set_num_threads` both libraries keep their defaults from the environment,
so ``OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python ...`` runs everything on one thread.

OpenBLAS's worker threads spin for about 2^28 cycles (~0.1 s) after every product before they
sleep; on a machine with as many cores as threads they take the core the element-wise kernels'
second thread needs (measured: the threaded kernels then lose to the serial ones).  Set
``OPENBLAS_THREAD_TIMEOUT=4`` (spin 2^4 cycles; read when NumPy loads, so in the environment
before Python starts) when running two threads on two cores; it did not slow the products.

The parallel kernels use plain Python threads that claim chunks of work one at a time from a
shared counter, calling Numba kernels that release the GIL.  A helper thread that the operating
system does not schedule (a busy machine) claims no chunk, and the calling thread does the work
itself: the step never waits for a thread that has not started.  When no helper has started by
the time the calling thread finishes its first chunk, the machine has no idle core and the call
finishes serially (late helpers find the work closed to them).  The threads are started
per call (no pool is kept between calls); a call returns once every chunk is done, and a helper
that starts after that finds no chunk left and ends.

A helper that starts, takes a chunk and is then parked by the scheduler (another process wants
its core) still holds the call up until it runs again; so each call site also times itself and
runs serially where its threaded calls have been slower (:class:`ModeChooser`, one per process:
a cache of timings, never a change of results).  ``benchmarks/bench_threads.py --contention``
measures both schedules with busy loops competing.
"""
from __future__ import annotations

import _thread
import contextlib
import os
import statistics
import threading
import time

#: fewer elements than this per call run serially (measured with ``benchmarks/bench_threads.py
#: --sizes``: starting a helper and splitting the work costs ~0.13 ms; two threads first beat one
#: on the LIF forward at ~2^20 elements)
MIN_PARALLEL_ELEMENTS = 1 << 20


def _check_n(n, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) and not hasattr(n, "__index__"):
        raise ValueError(f"{what}: number of threads must be a positive int, got {n!r}")
    n = int(n)
    if n < 1:
        raise ValueError(f"{what}: number of threads must be a positive int, got {n}")
    return n


def numba_max_threads() -> int:
    """``NUMBA_NUM_THREADS``: the most threads Numba can use in this process."""
    import numba
    return int(numba.config.NUMBA_NUM_THREADS)


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for BLAS (process-wide) and the Numba kernels (calling thread).

    Numba's count is clamped to ``NUMBA_NUM_THREADS`` (see :func:`threads_info`).
    Raises ValueError when ``n`` is not a positive int.
    """
    import numba
    import threadpoolctl
    n = _check_n(n, "set_num_threads")
    _load_lazy_blas()
    threadpoolctl.threadpool_limits(n, user_api="blas")
    numba.set_num_threads(min(n, numba_max_threads()))


def _load_lazy_blas() -> None:
    """Load the BLAS that Numba loads only when it first compiles array code (SciPy's own
    OpenBLAS, through ``scipy.linalg.cython_blas``), so that a thread limit set now covers it
    too; a library loaded later starts with its default thread count."""
    try:
        import scipy.linalg.cython_blas  # noqa: F401
    except ImportError:          # SciPy is a dependency; without it Numba has no BLAS either
        pass


def get_num_threads() -> int:
    """Threads the element-wise kernels use when called from this thread (Numba's count)."""
    import numba
    return int(numba.get_num_threads())


def blas_threads() -> int:
    """The largest thread count among the loaded BLAS libraries (1 when none is loaded)."""
    import threadpoolctl
    counts = [lib["num_threads"] for lib in threadpoolctl.threadpool_info()
              if lib.get("user_api") == "blas"]
    return max(counts) if counts else 1


def threads_info() -> dict:
    """What the libraries report: ``{"numba", "numba_max", "numba_layer", "blas", "cpus",
    "affinity", "env"}``; ``blas`` is a list of ``{"library", "version", "num_threads"}`` and
    ``env`` the thread variables that are set."""
    import numba
    import threadpoolctl
    blas = [{"library": lib.get("internal_api"), "version": lib.get("version"),
             "num_threads": lib["num_threads"], "filepath": lib.get("filepath")}
            for lib in threadpoolctl.threadpool_info() if lib.get("user_api") == "blas"]
    try:
        layer = numba.threading_layer()
    except ValueError:          # no parallel Numba region has run yet
        layer = f"not started (configured: {numba.config.THREADING_LAYER})"
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                      "OPENBLAS_THREAD_TIMEOUT", "MKL_NUM_THREADS",
                                      "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER")
           if k in os.environ}
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {"numba": get_num_threads(), "numba_max": numba_max_threads(), "numba_layer": layer,
            "blas": blas, "cpus": os.cpu_count(), "affinity": affinity, "env": env}


@contextlib.contextmanager
def threads(n: int):
    """``with threads(n):`` run the block with ``n`` BLAS and Numba threads, then restore both."""
    import numba
    import threadpoolctl
    n = _check_n(n, "threads")
    before = numba.get_num_threads()
    with threadpoolctl.threadpool_limits(n, user_api="blas"):
        numba.set_num_threads(min(n, numba_max_threads()))
        try:
            yield
        finally:
            numba.set_num_threads(before)


def chunk_bounds(n: int, n_chunks: int) -> list[tuple[int, int]]:
    """``n_chunks`` contiguous ``(lo, hi)`` ranges covering ``range(n)`` (sizes differ by <= 1)."""
    n_chunks = max(1, min(n_chunks, n))
    q, r = divmod(n, n_chunks)
    bounds, lo = [], 0
    for i in range(n_chunks):
        hi = lo + q + (1 if i < r else 0)
        bounds.append((lo, hi))
        lo = hi
    return bounds


class ModeChooser:
    """Serial or threaded, per call site, from the wall times of earlier calls.

    A key (the kernel's code object, the thread count and the size class ``log2`` of the
    elements) keeps the seconds per element of its last ``window`` serial calls and of its
    last ``window`` threaded calls; a mode's estimate is the median of those (one slow call, a
    compilation or a page fault, does not decide; the first call in each mode is not counted:
    it may compile or load the kernel).  While either mode is unmeasured, that mode runs;
    then the faster one (the threads must beat serial by ``margin``, 10 %: where the two are
    close, serial is the safer bet), except every ``probe_every``-th call, which runs the
    other to keep its estimate current (the machine may become busy, or quiet again).  On a
    machine whose cores are taken by other processes the threads lose (a helper that the
    scheduler parks holds its chunk until it runs again), so the chooser falls back to serial
    there and pays the loss on one call in ``probe_every`` only.  Results do not depend on
    the choice    (every kernel gives the same bits at any split).
    """

    def __init__(self, probe_every: int = 16, window: int = 5, margin: float = 0.1):
        self.probe_every = int(probe_every)
        self.window = int(window)
        self.margin = float(margin)
        self._stats: dict = {}      # key -> [serial samples, threaded samples, calls]

    def _estimate(self, samples: list):
        return statistics.median(samples) if samples else None

    def threaded(self, key) -> bool:
        """Whether the next call under ``key`` should run threaded."""
        st = self._stats.get(key)
        if st is None or not st[1]:
            return True
        if not st[0]:
            return False
        faster_threaded = self._estimate(st[1]) < (1.0 - self.margin) * self._estimate(st[0])
        if st[2] % self.probe_every == 0:
            return not faster_threaded
        return faster_threaded

    def record(self, key, threaded: bool, seconds_per_element: float) -> None:
        """Add one call's time to ``key``'s samples for its mode."""
        st = self._stats.setdefault(key, [[], [], 0, set()])
        st[2] += 1
        if threaded not in st[3]:       # the first call in a mode: warm-up, not counted
            st[3].add(threaded)
            return
        samples = st[1 if threaded else 0]
        samples.append(seconds_per_element)
        if len(samples) > self.window:
            del samples[0]

    def estimates(self) -> dict:
        """``{key: (serial s/element or None, threaded s/element or None, calls)}``."""
        return {k: (self._estimate(v[0]), self._estimate(v[1]), v[2])
                for k, v in self._stats.items()}

    def clear(self) -> None:
        """Forget every measurement."""
        self._stats.clear()


#: choose serial or threaded per call site from measured times (False: always threaded above
#: ``MIN_PARALLEL_ELEMENTS``; the tests set this to exercise the threads)
ADAPTIVE = True
_CHOOSER = ModeChooser()


def parallel_chunks(fn, n: int, work_per_item: int = 1, n_threads: int | None = None,
                    chunks_per_thread: int = 4) -> int:
    """Call ``fn(lo, hi)`` over contiguous ranges covering ``range(n)``, on up to ``n_threads``.

    ``fn`` must write disjoint outputs for disjoint ranges and release the GIL (a Numba
    ``nogil`` kernel) to gain anything.  Runs ``fn(0, n)`` in the calling thread when
    ``n * work_per_item < MIN_PARALLEL_ELEMENTS``, when one thread is asked for, or when the
    call site's timings say the threads do not pay at present (:class:`ModeChooser`; off
    when ``ADAPTIVE`` is False).  Otherwise the range is cut into
    ``chunks_per_thread * n_threads`` chunks that the calling thread and ``n_threads - 1``
    helper threads claim one at a time (dynamic schedule: an unscheduled helper takes no
    work; helpers that have not started when the caller ends its first chunk never join).
    An exception raised in any chunk is re-raised here after all threads end.

    Args:
        fn: callable ``(lo, hi) -> None``.
        n: number of items (e.g. neurons, channels, feature maps).
        work_per_item: elements per item (e.g. time steps x ...), for the serial threshold.
        n_threads: threads to use; default :func:`get_num_threads`.
    Returns:
        the number of threads started, counting the caller (1: ran serially).
    """
    if n_threads is None:
        n_threads = get_num_threads()
    n_threads = min(_check_n(n_threads, "parallel_chunks"), max(n, 1))
    elements = n * work_per_item
    if n_threads == 1 or elements < MIN_PARALLEL_ELEMENTS:
        fn(0, n)
        return 1
    if not ADAPTIVE:
        _run_threaded(fn, n, n_threads, chunks_per_thread)
        return n_threads
    key = (getattr(fn, "__code__", None) or type(fn), n_threads, max(elements, 1).bit_length())
    threaded = _CHOOSER.threaded(key)
    t0 = time.perf_counter()
    if threaded:
        _run_threaded(fn, n, n_threads, chunks_per_thread)
    else:
        fn(0, n)
    _CHOOSER.record(key, threaded, (time.perf_counter() - t0) / elements)
    return n_threads if threaded else 1


def _run_threaded(fn, n: int, n_threads: int, chunks_per_thread: int) -> None:
    """The threaded schedule of :func:`parallel_chunks` (always on ``n_threads`` threads)."""
    bounds = chunk_bounds(n, chunks_per_thread * n_threads)
    # next: first unclaimed chunk; active: chunks being run; started: helpers that joined;
    # closed: no helper may join any more (set when none had started by the time the caller
    # finished its first chunk: the machine has no idle core, so the caller works alone)
    state = {"next": 0, "active": 0, "started": 0, "closed": False}
    errors: list[BaseException] = []
    cond = threading.Condition()

    def claim():
        """The next chunk, counted as active until :func:`done` (None: nothing left)."""
        with cond:
            i = state["next"]
            if i >= len(bounds) or errors:
                return None
            state["next"] = i + 1
            state["active"] += 1
            return bounds[i]

    def done(error=None):
        with cond:
            state["active"] -= 1
            if error is not None:
                errors.append(error)
            cond.notify_all()

    def run(b) -> bool:
        try:
            fn(*b)
        except BaseException as e:       # noqa: BLE001 - re-raised in the caller
            done(e)
            return False
        done()
        return True

    def helper():
        with cond:
            if state["closed"]:
                return
            state["started"] += 1
        while (b := claim()) is not None and run(b):
            pass

    # _thread.start_new_thread returns at once (threading.Thread.start waits until the new
    # thread runs, which on a busy machine can take a scheduler time slice)
    for _ in range(n_threads - 1):
        _thread.start_new_thread(helper, ())
    b = claim()
    if b is not None and run(b):
        with cond:
            if state["started"] == 0:
                state["closed"] = True
        while (b := claim()) is not None and run(b):
            pass
    with cond:        # wait for chunks still running in helpers; late helpers find none left
        cond.wait_for(lambda: state["active"] == 0)
    if errors:
        raise errors[0]

// dcgan._mpi: the MPI communicator (core/comm.hpp) and the few process-level MPI calls the
// Python side needs (init, rank and size, barrier, byte broadcasts, abort). A module of its own,
// linked against libmpi: `import dcgan` never loads MPI; dcgan.distributed imports this module
// only when a run has several ranks or asks for MPI.
//
// Collectives run non-blocking and are polled against a deadline: a rank that stops taking part
// (killed, stuck, raised) makes the others abort the whole job with a message naming the
// operation, instead of waiting forever. The communicator is handed to dcgan._core in a capsule
// named "dcgan.Communicator" (see cpp/bindings/module.cpp).
#include <mpi.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bindings/comm_capsule.hpp"
#include "core/comm.hpp"

namespace py = pybind11;

namespace dcgan {
namespace {

std::string mpi_error(int code) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, msg, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(msg, static_cast<size_t>(len));
}

void check(int code, const char* what) {
  if (code != MPI_SUCCESS)
    throw std::runtime_error(std::string(what) + " failed: " + mpi_error(code));
}

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

// Ends every rank. MPICH's launcher forwards each rank's stderr through its proxy, and
// MPI_Abort can tear the job down before the proxy has read what this rank has just written (seen:
// the timeout message missing from the job's stderr in about 1 run of 3). So flush, give the
// proxy a moment to forward it, and only then abort.
[[noreturn]] void abort_world(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

// Waits for `req`, polling; past `timeout_s` seconds (> 0) every rank is told to stop.
void wait_or_abort(MPI_Request* req, double timeout_s, const char* what) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  for (long spins = 0;; ++spins) {
    int done = 0;
    check(MPI_Test(req, &done, MPI_STATUS_IGNORE), what);
    if (done) return;
    if ((spins & 1023) == 1023) {
      const double waited = std::chrono::duration<double>(clock::now() - start).count();
      if (timeout_s > 0 && waited > timeout_s) {
        std::fprintf(stderr,
                     "dcgan: rank %d waited %.0f s for the other ranks in %s; a rank has died "
                     "or stopped (its own message says why). Stopping every rank.\n",
                     world_rank(), waited, what);
        abort_world(3);
      }
      if (waited > 1e-3) std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }
}

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(double timeout_s) : timeout_s_(timeout_s) {
    check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }
  std::string name() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce_mean(float* buf, int64_t n) override {
    for_chunks(n, [&](int64_t off, int count) {
      MPI_Request req;
      check(MPI_Iallreduce(MPI_IN_PLACE, buf + off, count, MPI_FLOAT, MPI_SUM, comm_, &req),
            "MPI_Iallreduce");
      wait_or_abort(&req, timeout_s_, "an all-reduce");
    });
    const float inv = 1.f / static_cast<float>(size_);
    for (int64_t i = 0; i < n; ++i) buf[i] *= inv;
  }

  void broadcast(float* buf, int64_t n, int root) override {
    for_chunks(n, [&](int64_t off, int count) {
      MPI_Request req;
      check(MPI_Ibcast(buf + off, count, MPI_FLOAT, root, comm_, &req), "MPI_Ibcast");
      wait_or_abort(&req, timeout_s_, "a broadcast");
    });
  }

  void all_gather(const float* in, float* out, int64_t n) override {
    if (n > kMaxCount / size_) throw std::invalid_argument("all_gather: too many elements");
    MPI_Request req;
    check(MPI_Iallgather(in, static_cast<int>(n), MPI_FLOAT, out, static_cast<int>(n), MPI_FLOAT,
                         comm_, &req),
          "MPI_Iallgather");
    wait_or_abort(&req, timeout_s_, "an all-gather");
  }

 private:
  static constexpr int64_t kMaxCount = int64_t(1) << 30;
  template <class F>
  void for_chunks(int64_t n, F f) {
    for (int64_t off = 0; off < n; off += kMaxCount)
      f(off, static_cast<int>(std::min<int64_t>(kMaxCount, n - off)));
  }
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  double timeout_s_;
};

bool initialized() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}

void require_init() {
  if (!initialized())
    throw std::runtime_error("MPI is not initialised: call dcgan._mpi.init() first");
}

py::tuple init() {
  int fin = 0;
  MPI_Finalized(&fin);
  if (fin) throw std::runtime_error("MPI was finalised already in this process; it cannot restart");
  int init = 0;
  MPI_Initialized(&init);
  if (!init) {
    int provided = 0;
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return py::make_tuple(rank, size);
}

void finalize() {
  if (initialized()) MPI_Finalize();
}

void barrier(double timeout_s) {
  require_init();
  MPI_Request req;
  check(MPI_Ibarrier(MPI_COMM_WORLD, &req), "MPI_Ibarrier");
  py::gil_scoped_release nogil;
  wait_or_abort(&req, timeout_s, "a barrier");
}

// root's bytes on every rank (others pass anything, e.g. b"").
py::bytes bcast_bytes(const py::bytes& data, int root, double timeout_s) {
  require_init();
  std::string s = data;
  long long n = static_cast<long long>(s.size());
  {
    py::gil_scoped_release nogil;
    MPI_Request req;
    check(MPI_Ibcast(&n, 1, MPI_LONG_LONG, root, MPI_COMM_WORLD, &req), "MPI_Ibcast");
    wait_or_abort(&req, timeout_s, "a broadcast");
    if (n < 0 || n > (1ll << 30)) throw std::runtime_error("bcast_bytes: bad length");
    s.resize(static_cast<size_t>(n));
    check(MPI_Ibcast(s.data(), static_cast<int>(n), MPI_BYTE, root, MPI_COMM_WORLD, &req),
          "MPI_Ibcast");
    wait_or_abort(&req, timeout_s, "a broadcast");
  }
  return py::bytes(s);
}

// Every rank's bytes, in rank order.
std::vector<py::bytes> allgather_bytes(const py::bytes& data, double timeout_s) {
  require_init();
  const std::string s = data;
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  std::vector<int> lens(static_cast<size_t>(size)), displs(static_cast<size_t>(size));
  std::string all;
  {
    py::gil_scoped_release nogil;
    int n = static_cast<int>(s.size());
    MPI_Request req;
    check(MPI_Iallgather(&n, 1, MPI_INT, lens.data(), 1, MPI_INT, MPI_COMM_WORLD, &req),
          "MPI_Iallgather");
    wait_or_abort(&req, timeout_s, "an all-gather");
    long long total = 0;
    for (int r = 0; r < size; ++r) displs[r] = static_cast<int>(total), total += lens[r];
    if (total > (1ll << 30)) throw std::runtime_error("allgather_bytes: too much data");
    all.resize(static_cast<size_t>(total));
    check(MPI_Iallgatherv(s.data(), n, MPI_BYTE, all.data(), lens.data(), displs.data(), MPI_BYTE,
                          MPI_COMM_WORLD, &req),
          "MPI_Iallgatherv");
    wait_or_abort(&req, timeout_s, "an all-gather");
  }
  std::vector<py::bytes> out;
  for (int r = 0; r < size; ++r) out.emplace_back(all.substr(displs[r], lens[r]));
  return out;
}

[[noreturn]] void abort_job(int code) {
  if (initialized()) abort_world(code);
  std::_Exit(code);
}

// A capsule (bindings/comm_capsule.hpp) with a new communicator over a duplicate of
// MPI_COMM_WORLD, for dcgan._core's Trainer to take over.
py::capsule communicator(double timeout_s) {
  require_init();
  return communicator_capsule(std::make_unique<MpiCommunicator>(timeout_s));
}

// Median seconds of one all_reduce_mean of n floats through the trainer's communicator (every
// rank must call it with the same n and reps): for bench/bench_mpi.py.
double time_all_reduce(int64_t n, int reps, double timeout_s) {
  require_init();
  if (n <= 0 || reps <= 0) throw std::invalid_argument("n and reps must be positive");
  MpiCommunicator c(timeout_s);
  std::vector<float> buf(static_cast<size_t>(n), 1.f);
  std::vector<double> t;
  py::gil_scoped_release nogil;
  c.all_reduce_mean(buf.data(), n);  // warm-up
  for (int i = 0; i < reps; ++i) {
    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = MPI_Wtime();
    c.all_reduce_mean(buf.data(), n);
    t.push_back(MPI_Wtime() - t0);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

std::string library_version() {
  char v[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(v, &len);
  std::string s(v, static_cast<size_t>(len));
  const auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

}  // namespace
}  // namespace dcgan

PYBIND11_MODULE(_mpi, m) {
  using namespace dcgan;
  m.doc() = "MPI for dcgan's data-parallel training (use dcgan.distributed, not this module)";
  m.def("init", &init, "MPI_Init_thread (serialized) unless initialised; returns (rank, size)");
  m.def("initialized", &initialized);
  m.def("finalize", &finalize);
  m.def("barrier", &barrier, py::arg("timeout_s") = 0.0);
  m.def("bcast_bytes", &bcast_bytes, py::arg("data"), py::arg("root") = 0,
        py::arg("timeout_s") = 0.0);
  m.def("allgather_bytes", &allgather_bytes, py::arg("data"), py::arg("timeout_s") = 0.0);
  m.def("abort", &abort_job, py::arg("code") = 1, "MPI_Abort on MPI_COMM_WORLD: ends every rank");
  m.def("communicator", &communicator, py::arg("timeout_s") = 0.0);
  m.def("library_version", &library_version);
  m.def("time_all_reduce", &time_all_reduce, py::arg("n"), py::arg("reps"),
        py::arg("timeout_s") = 0.0);
}

// version_text(): project version from CMake, library versions asked of the loaded libraries
// (not the headers), so a report names what actually ran.
#include "core/version.hpp"

#include <hdf5.h>
#include <mpi.h>
#include <oneapi/dnnl/dnnl.h>

#include <sstream>

#ifndef VD_VERSION
#error "VD_VERSION is defined for this file by CMakeLists.txt from project(VERSION)"
#endif

namespace vd {
namespace {

std::string runtime_name(unsigned runtime) {
  switch (runtime) {
    case DNNL_RUNTIME_NONE:
      return "none";
    case DNNL_RUNTIME_SEQ:
      return "sequential";
    case DNNL_RUNTIME_OMP:
      return "OpenMP";
    case DNNL_RUNTIME_TBB:
      return "TBB";
    case DNNL_RUNTIME_THREADPOOL:
      return "threadpool";
    case DNNL_RUNTIME_OCL:
      return "OpenCL";
    case DNNL_RUNTIME_SYCL:
      return "SYCL";
    default:
      return std::to_string(runtime);
  }
}

// The first line of MPI_Get_library_version: Open MPI's is one line, MPICH's goes on for
// many lines of configure options.
std::string mpi_library() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int len = 0;
  if (MPI_Get_library_version(text, &len) != MPI_SUCCESS) return "unknown library";
  std::string s(text, static_cast<size_t>(len));
  s = s.substr(0, s.find('\n'));
  while (!s.empty() && (s.back() == ' ' || s.back() == '\r' || s.back() == '\0')) s.pop_back();
  return s;
}

}  // namespace

const char* project_version() {
  return VD_VERSION;
}

std::string version_text(const std::string& program) {
  std::ostringstream out;
  out << program << " " << VD_VERSION << "\n";

  const dnnl_version_t* d = dnnl_version();
  out << "oneDNN " << d->major << "." << d->minor << "." << d->patch;
  out << " (commit " << (d->hash != nullptr && *d->hash ? d->hash : "unknown") << ", CPU runtime "
      << runtime_name(d->cpu_runtime) << ", GPU runtime " << runtime_name(d->gpu_runtime) << ")\n";

  unsigned major = 0, minor = 0, release = 0;
  if (H5get_libversion(&major, &minor, &release) >= 0)
    out << "HDF5 " << major << "." << minor << "." << release << "\n";
  else
    out << "HDF5 unknown\n";

  int version = 0, subversion = 0;
  MPI_Get_version(&version, &subversion);
  out << "MPI " << version << "." << subversion << ": " << mpi_library() << "\n";
  return out.str();
}

}  // namespace vd

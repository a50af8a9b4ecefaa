// The versions a bug report needs: vae_dist's own (CMake's project VERSION) and those of the
// oneDNN, HDF5 and MPI libraries loaded at run time. Starts nothing: MPI is not initialised.
#pragma once
#include <string>

namespace vd {

// The project version, e.g. "0.1.0".
const char* project_version();

// Four lines, e.g. "vae_dist 0.1.0\noneDNN 2.7.3 (...)\nHDF5 1.10.8\nMPI 3.1: Open MPI v4.1.4
// ...\n", the first word being program. The MPI line comes from MPI_Get_library_version, which the
// MPI standard allows before MPI_Init.
std::string version_text(const std::string& program);

}  // namespace vd

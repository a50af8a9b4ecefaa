# vd_add_test(): the one place a test executable is registered with ctest.
#   vd_add_test(NAME n SOURCES a.cpp ... [RANKS p] [LABELS l ...] [TIMEOUT s])
# RANKS > 1 runs the test through mpiexec with that many ranks (oversubscribed, so
# 3 ranks work on a 2-core machine); its main() must be tests/mpi_main.cpp. HWLOC_COMPONENTS=-gl:
# mpiexec's hwloc would probe X displays, 5 s per start where "localhost" is not in /etc/hosts.
function(vd_add_test)
  cmake_parse_arguments(T "" "NAME;RANKS;TIMEOUT" "SOURCES;LABELS" ${ARGN})
  if(NOT T_RANKS)
    set(T_RANKS 1)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  if(NOT TARGET ${T_NAME})
    add_executable(${T_NAME} ${T_SOURCES})
    target_link_libraries(${T_NAME} PRIVATE vae_core GTest::gtest)
    target_compile_definitions(${T_NAME} PRIVATE
      VD_SOURCE_DIR="${PROJECT_SOURCE_DIR}" VD_BINARY_DIR="${PROJECT_BINARY_DIR}")
    vd_set_warnings(${T_NAME})
  endif()
  if(T_RANKS GREATER 1)
    set(test_name ${T_NAME}_np${T_RANKS})
    add_test(NAME ${test_name}
             COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${T_RANKS} --oversubscribe
                     ${MPIEXEC_PREFLAGS} $<TARGET_FILE:${T_NAME}> ${MPIEXEC_POSTFLAGS})
    set_tests_properties(${test_name} PROPERTIES PROCESSORS ${T_RANKS} LABELS "mpi;${T_LABELS}"
      ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMP_NUM_THREADS=1;HWLOC_COMPONENTS=-gl")
  else()
    set(test_name ${T_NAME})
    add_test(NAME ${test_name} COMMAND $<TARGET_FILE:${T_NAME}>)
    set_tests_properties(${test_name} PROPERTIES LABELS "unit;${T_LABELS}")
  endif()
  set_tests_properties(${test_name} PROPERTIES TIMEOUT ${T_TIMEOUT}
                       WORKING_DIRECTORY ${PROJECT_BINARY_DIR})
endfunction()

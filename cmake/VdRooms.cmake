# The rooms of src/ as one static library each, vd_<room>, linking only the rooms that the table
# "What each room may use" in docs/design.md allows (the arrows are written there once, and read
# here). Each room compiles against an include directory that holds only itself and the rooms it
# may reach (symbolic links in <build>/rooms/<room>/), so an include of any other room does not
# compile: nn cannot include parallel/, vae cannot include train/.

# The rooms in the order of the table: every room comes after the rooms it uses.
set(VD_ROOMS core data nn optim config io parallel vae train)

# VD_ROOM_USES_<room>: the rooms its row names (words in backticks that are rooms).
function(vd_read_room_arrows design_md)
  file(READ ${design_md} text)
  foreach(room ${VD_ROOMS})
    string(REGEX MATCH "\n\\| `${room}` \\|[^\n]*" row "${text}")
    if(NOT row)
      message(FATAL_ERROR "${design_md}: the table 'What each room may use' has no row for "
                          "`${room}`; every room of src/ needs one")
    endif()
    string(REGEX REPLACE "^\n\\| `${room}` \\|" "" uses "${row}")
    string(REGEX MATCHALL "`[a-z]+`" words "${uses}")
    set(deps)
    foreach(w ${words})
      string(REPLACE "`" "" w ${w})
      if(w IN_LIST VD_ROOMS AND NOT w STREQUAL room)
        list(APPEND deps ${w})
      endif()
    endforeach()
    list(REMOVE_DUPLICATES deps)
    set(VD_ROOM_USES_${room} ${deps} PARENT_SCOPE)
  endforeach()
endfunction()

# vd_add_rooms(<external libraries...>): the libraries, and vae_core, an interface library of
# all rooms that the programs and tests link. The external libraries go to core, the room every
# other one uses, so every room compiles with the same flags.
function(vd_add_rooms)
  vd_read_room_arrows(${PROJECT_SOURCE_DIR}/docs/design.md)
  set(done)
  foreach(room ${VD_ROOMS})
    set(reach ${room})
    foreach(dep ${VD_ROOM_USES_${room}})
      if(NOT dep IN_LIST done)
        message(FATAL_ERROR "docs/design.md: `${room}` uses `${dep}`, which comes later in the "
                            "table (or the arrows form a cycle); a room may use only rooms above it")
      endif()
      list(APPEND reach ${dep} ${VD_ROOM_REACH_${dep}})
    endforeach()
    list(REMOVE_DUPLICATES reach)
    set(VD_ROOM_REACH_${room} ${reach})
    list(APPEND done ${room})

    file(GLOB sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/${room}/*.cpp)
    add_library(vd_${room} STATIC ${sources})
    set(inc ${PROJECT_BINARY_DIR}/rooms/${room})
    file(REMOVE_RECURSE ${inc})
    file(MAKE_DIRECTORY ${inc})
    foreach(r ${reach})
      file(CREATE_LINK ${PROJECT_SOURCE_DIR}/src/${r} ${inc}/${r} SYMBOLIC)
    endforeach()
    target_include_directories(vd_${room} PUBLIC ${inc})
    foreach(dep ${VD_ROOM_USES_${room}})
      target_link_libraries(vd_${room} PUBLIC vd_${dep})
    endforeach()
    vd_set_warnings(vd_${room})
  endforeach()
  target_link_libraries(vd_core PUBLIC ${ARGN})

  add_library(vae_core INTERFACE)
  target_include_directories(vae_core INTERFACE ${PROJECT_SOURCE_DIR}/src)
  foreach(room ${VD_ROOMS})
    target_link_libraries(vae_core INTERFACE vd_${room})
  endforeach()
endfunction()

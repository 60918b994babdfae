# spillway_component(NAME SOURCES ... DEPENDS ... [EXTERNAL ...])
#
# Declares component NAME as static library `spillway_NAME`. Its headers live in the folder
# NAME/ at the top of the repository and are included as "NAME/foo.h".
#
# Layering is enforced by include paths: a component's include root is a directory in the build
# tree that holds one entry, a link named NAME pointing at the component's folder. A target sees
# "X/..." headers only if it links component X (directly or through DEPENDS), so an include that
# points the wrong way ("serve/..." from engine) fails to compile with "No such file".
set(SPILLWAY_INCLUDE_ROOTS ${CMAKE_BINARY_DIR}/include_roots)

# Creates the include root of folder NAME: ${SPILLWAY_INCLUDE_ROOTS}/NAME/NAME -> source folder.
function(spillway_include_root name)
  set(root ${SPILLWAY_INCLUDE_ROOTS}/${name})
  file(MAKE_DIRECTORY ${root})
  file(CREATE_LINK ${CMAKE_SOURCE_DIR}/${name} ${root}/${name} SYMBOLIC)
endfunction()

function(spillway_component name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPENDS;EXTERNAL" ${ARGN})
  set(root ${SPILLWAY_INCLUDE_ROOTS}/${name})
  spillway_include_root(${name})
  add_library(spillway_${name} STATIC ${ARG_SOURCES})
  target_include_directories(spillway_${name} PUBLIC ${root})
  foreach(dep IN LISTS ARG_DEPENDS)
    target_link_libraries(spillway_${name} PUBLIC spillway_${dep})
  endforeach()
  target_link_libraries(spillway_${name} PUBLIC ${ARG_EXTERNAL})
  set_property(GLOBAL APPEND PROPERTY SPILLWAY_COMPONENTS ${name})
  set_property(GLOBAL PROPERTY SPILLWAY_DEPENDS_${name} ${ARG_DEPENDS})
endfunction()

# Configure-time self-test of the mechanism above: compiling a file that includes a header of
# a component it does not depend on, with that component's include roots, must fail. If it
# ever compiled, layering would no longer be enforced, so configuration stops.
function(spillway_check_layering)
  set(probe_dir ${CMAKE_BINARY_DIR}/layering_probe)
  file(WRITE ${probe_dir}/wrong_way.cc "#include \"engine/ggml_type.h\"\nint main() { return 0; }\n")
  try_compile(wrong_way_compiles ${probe_dir}/bin SOURCES ${probe_dir}/wrong_way.cc
              CMAKE_FLAGS "-DINCLUDE_DIRECTORIES=${SPILLWAY_INCLUDE_ROOTS}/core"
              CXX_STANDARD 20)
  if(wrong_way_compiles)
    message(FATAL_ERROR "layering check: core could include an engine header; include roots are broken")
  endif()
endfunction()

# ctest's install_consumer: `cmake --install` the build tree into a scratch prefix, configure
# tests/install_consumer/ against that prefix only, build it and run it.
# cmake -DMAMBALM_BUILD_DIR=... -DMAMBALM_SOURCE_DIR=... -DWORK_DIR=... -DGENERATOR=... -DCXX=...
#       [-DFLAGS=compile+link flags] -P run.cmake
file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")

function(step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install_consumer: ${what} failed (${rc}):\n${out}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

step("cmake --install" ${CMAKE_COMMAND} --install "${MAMBALM_BUILD_DIR}" --prefix "${prefix}")
foreach(f bin/mambalm include/mambalm/model/model.h)
  if(NOT EXISTS "${prefix}/${f}")
    message(FATAL_ERROR "install_consumer: ${prefix}/${f} was not installed")
  endif()
endforeach()
# Only the install prefix: no package registry, no source tree.
step("configuring the consumer" ${CMAKE_COMMAND} -S "${MAMBALM_SOURCE_DIR}/tests/install_consumer"
     -B "${WORK_DIR}/build" -G "${GENERATOR}" -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_BUILD_TYPE=Release
     "-DCMAKE_PREFIX_PATH=${prefix}" "-DEXPECTED_PREFIX=${prefix}"
     "-DCMAKE_CXX_FLAGS=${FLAGS}" "-DCMAKE_EXE_LINKER_FLAGS=${FLAGS}"
     -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
step("building the consumer" ${CMAKE_COMMAND} --build "${WORK_DIR}/build")
step("running the consumer" "${WORK_DIR}/build/consumer" "${WORK_DIR}/model")
message("${step_output}")
step("running the installed binary" "${prefix}/bin/mambalm" info "${WORK_DIR}/model")
message("installed mambalm info: ok")

# deploy_config_test.py: the Dockerfile, deploy/docker-compose.yml and every
# manifest in deploy/k8s/ parse, and agree with sepconv-server's flag defaults
# (ports, probe ports, flags, metric path) and with each other.
set(sepconv_deploy_config_args --source ${PROJECT_SOURCE_DIR} --server $<TARGET_FILE:sepconv-server>
    --client $<TARGET_FILE:sepconv-client>)
add_test(NAME deploy_config_test
         COMMAND ${SEPCONV_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/deploy_config_test.py
                 ${sepconv_deploy_config_args})
set_tests_properties(deploy_config_test PROPERTIES LABELS unit TIMEOUT 60)

# Prometheus config, rules and their unit tests; the Grafana dashboard's queries.
find_program(SEPCONV_PROMTOOL promtool REQUIRED)
set(prom_dir ${SEPCONV_DEPLOY_DIR}/prometheus)

add_test(NAME monitoring_promtool_check_config
         COMMAND ${SEPCONV_PROMTOOL} check config ${prom_dir}/prometheus.yml)
add_test(NAME monitoring_promtool_check_rules
         COMMAND ${SEPCONV_PROMTOOL} check rules ${prom_dir}/rules.yml)
add_test(NAME monitoring_promtool_test_rules
         COMMAND ${SEPCONV_PROMTOOL} test rules rules_test.yml
         WORKING_DIRECTORY ${prom_dir})
add_test(NAME monitoring_dashboard_queries
         COMMAND ${SEPCONV_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/monitoring_check.py
                 --root ${PROJECT_SOURCE_DIR} --promtool ${SEPCONV_PROMTOOL})
set_tests_properties(monitoring_promtool_check_config monitoring_promtool_check_rules
                     monitoring_promtool_test_rules monitoring_dashboard_queries
                     PROPERTIES LABELS unit TIMEOUT 60)

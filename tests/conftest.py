"""The test harness is the es4ps_testkit package (testkit/): its fixtures come in as pytest plugins.

Each fixture that needs a service starts it and fails the test loudly when it
cannot; nothing is skipped. See es4ps_testkit.plugins for what each plugin gives.
"""

pytest_plugins = [
    "es4ps_testkit.plugins.services",
    "es4ps_testkit.plugins.mail",
    "es4ps_testkit.plugins.cluster",
    "es4ps_testkit.plugins.operator",
    "es4ps_testkit.plugins.portal",
    "es4ps_testkit.plugins.e2e",
]

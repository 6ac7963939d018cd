"""Run the reference's unittest suite with unittest's usual output, then one plain summary line
`reference: N passed, N failed[, N skipped]` for CI scripts that count results. Exit status 1 on failure.

    /usr/bin/python3 tools/reference/run_tests.py
(equivalent to: /usr/bin/python3 -m unittest discover -s tools/reference/tests -t tools/reference)
"""
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

if __name__ == "__main__":
    suite = unittest.defaultTestLoader.discover(os.path.join(HERE, "tests"), top_level_dir=HERE)
    result = unittest.TextTestRunner(verbosity=int(os.environ.get("VERBOSE", "1"))).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped
    print(f"reference: {passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    sys.exit(0 if result.wasSuccessful() else 1)

// SPDX-License-Identifier: Apache-2.0
// The unit-test binary's entry point.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

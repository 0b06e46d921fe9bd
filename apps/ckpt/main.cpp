// SPDX-License-Identifier: Apache-2.0
// The ckpt binary: a thin forward into the command-line front end.
#include "cli.hpp"

int main(int argc, char** argv) { return ckpt::cli::run(argc, argv); }

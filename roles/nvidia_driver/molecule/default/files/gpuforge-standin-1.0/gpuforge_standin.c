// SPDX-License-Identifier: GPL-2.0
// gpuforge TEST STAND-IN for the nvidia DKMS module: a real module that DKMS builds in seconds
// and that drives nothing. Molecule builds it instead of nvidia-kernel-dkms (minutes) to prove
// the reboot gate against real `dkms status` output.
#include <linux/module.h>
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("gpuforge test stand-in for the nvidia DKMS module");

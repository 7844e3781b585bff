// SPDX-License-Identifier: GPL-2.0
// gpuforge TEST STAND-IN: does not compile on purpose (a kernel API it calls with too few
// arguments), as a driver release that does not build against a newer kernel.
#include <linux/module.h>
#include <linux/pci.h>
MODULE_LICENSE("GPL");

static int __init gfbroken_init(void)
{
	return pci_resize_resource(NULL, 0);
}
module_init(gfbroken_init);

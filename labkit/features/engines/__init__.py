"""Newer Docker engines, run on this machine for the engine matrix.

The course must hold on the engine a learner has: Debian 12's Engine 20.10 (this
machine's), Debian 13's 26.1 and a current 28.x. A Debian 12 host cannot install the
newer ones, so labkit builds each from Debian's own archive into a root filesystem
(:mod:`~labkit.features.engines.rootfs`) and runs its ``dockerd`` in place of the
machine's, in a mount namespace whose root is that filesystem
(:mod:`~labkit.features.engines.daemon`). Clients see one daemon at the usual socket,
as they would on a machine where that engine is installed.
"""

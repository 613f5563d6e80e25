"""What a denoiser is made of and how to cut it: units (the prunable blocks and branches and their costs), gates
(switching units off without surgery), costs (parameters and MACs, on stated inputs), selection (the Budget and
the greedy choice of units under it, shared by criteria and prune), surgery (removing units for real), export
(a cut as a plain stock model where its config allows), and removal.py, the replacement modules and Pruned*
classes that also travel with saved cuts as their own code (so it imports nothing from diffprune).

May import: the package root's shared modules (errors, devices, tensors, outputs, distributed) and families/.
"""

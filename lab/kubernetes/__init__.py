"""The lab's Kubernetes API fake: the official client talks to it as to a cluster.

``KubernetesFake(world)`` serves pods, logs, exec, events, config maps, PVCs, nodes and
kubelet stats (core/v1), Deployments/StatefulSets with patch and scale, ReplicaSets and
ControllerRevisions (apps/v1), StorageClasses and ``metrics.k8s.io`` pod metrics, all
rendered from the shared ``lab.world.World``.
"""

from lab.kubernetes.server import KubernetesFake, RecordedRequest

__all__ = ["KubernetesFake", "RecordedRequest"]

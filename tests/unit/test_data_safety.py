from handover.gate.hazards import data_safety
from handover.core.inventory import Component, Workload
from tests.unit.kube_fake import FakeKube

TEMPO = Component("tempo", "helm", "medium", "t", ("logging",),
                  workloads=(Workload("StatefulSet", "tempo", "logging", "a=b"),), pvs=("tempo-pv",))


def objs(policy="Retain", sc_policy="Retain"):
    return [
        {"kind": "StatefulSet", "metadata": {"name": "tempo", "namespace": "logging"},
         "spec": {"volumeClaimTemplates": [{"metadata": {"name": "storage"}}]}},
        {"kind": "PersistentVolumeClaim", "metadata": {"name": "storage-tempo-0",
                                                       "namespace": "logging"},
         "spec": {"volumeName": "tempo-pv", "storageClassName": "local-path"}},
        {"kind": "PersistentVolume", "metadata": {"name": "tempo-pv"},
         "spec": {"persistentVolumeReclaimPolicy": policy}},
        {"kind": "StorageClass", "metadata": {"name": "local-path"}, "reclaimPolicy": sc_policy},
    ]


def test_retain_passes():
    assert data_safety.check_data_safety(FakeKube(*objs()), TEMPO, []) == []


def test_delete_pv_behind_statefulset_claim_and_storage_class_warning():
    found = data_safety.check_data_safety(FakeKube(*objs("Delete", "Delete")), TEMPO, [])
    errors = [f for f in found if f.severity == "error"]
    [e] = errors
    assert e.subject == "PersistentVolume tempo-pv"
    assert "'Delete'" in e.problem and "PVC logging/storage-tempo-0" in e.problem
    assert "claim template storage of StatefulSet logging/tempo" in e.problem
    assert "persistentVolumeReclaimPolicy" in e.fix
    [w] = [f for f in found if f.severity == "warning"]
    assert w.subject == "StorageClass local-path"


def test_inventory_pv_missing_or_delete_and_git_pv_delete():
    comp = Component("storage", "storage", "low", "s", pvs=("nope", "tempo-pv"))
    kube = FakeKube(*objs("Delete")[2:3])
    git_pv = {"kind": "PersistentVolume", "metadata": {"name": "x"},
              "spec": {"persistentVolumeReclaimPolicy": "Recycle"}}
    found = data_safety.check_data_safety(kube, comp, [git_pv])
    assert [f.subject for f in found] == ["PersistentVolume nope", "PersistentVolume tempo-pv",
                                          "PersistentVolume x"]
    assert "does not exist live" in found[0].problem
    assert "Git 'Recycle'" in found[2].problem

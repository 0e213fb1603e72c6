"""Deployment tooling: the local cluster (replicas behind nginx) and, under k8s/, Kubernetes manifests."""

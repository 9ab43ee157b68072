//! From a kubeconfig context, or the service account of the pod the server
//! runs in (context `in-cluster`), to a [`super::KubeTarget`].

package apiserver_test

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

type metaStatus = metav1.Status

func metaList() metav1.ListOptions { return metav1.ListOptions{} }
func metaGet() metav1.GetOptions   { return metav1.GetOptions{} }

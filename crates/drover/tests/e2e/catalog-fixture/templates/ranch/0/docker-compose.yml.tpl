version: '2'
services:
  main:
    image: drover-test/busybox:1
    command: ["/bin/busybox", "sleep", "3600"]
    stop_grace_period: 1s
    labels:
      io.rancher.sidekicks: helper
{{- if eq .Values.WITH_ENV "true" }}
    environment:
      MODE: {{ .Values.MODE | quote }}
      STACK: {{ .Stack.Name }}
{{- end }}
  helper:
    image: drover-test/busybox:1
    command: ["/bin/busybox", "sleep", "3600"]
    stop_grace_period: 1s

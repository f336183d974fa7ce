// Package external owns what a SummonPlatform has outside Kubernetes: an S3 bucket and an IAM
// user, a RabbitMQ vhost and user, a Postgres role and database. Name derivation here is pure;
// the providers that create and delete those resources (packages aws, rabbitmq and postgres
// below) sit behind narrow interfaces and share what this package defines for them: the
// Instance they act on, the Error that classifies their failures for the status, and the
// deadline of each call. This package itself performs no I/O.
package external

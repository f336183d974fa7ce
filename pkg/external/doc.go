// Package external owns what a SummonPlatform has outside Kubernetes: an S3 bucket and an IAM
// user, a RabbitMQ vhost and user, a Postgres role and database. Name derivation here is pure;
// the providers that create and delete those resources sit behind narrow interfaces.
package external

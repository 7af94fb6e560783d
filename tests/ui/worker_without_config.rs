// A worker needs to know where Postgres is: `config` is required by the builder.
fn main() {
    let _worker = pgqrs::Worker::builder().name("mailer").build();
}

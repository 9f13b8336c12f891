use super::*;

fn url(addressing: &Addressing, region: &str, bucket: &str) -> Result<String, PresignError> {
    addressing.url(
        &Region::new(region).unwrap(),
        &BucketName::new(bucket).unwrap(),
    )
}

#[test]
fn regions_are_lower_case_labels_and_not_pseudo_regions() {
    for ok in ["us-east-1", "a", "eusc-de-east-1", "local"] {
        assert!(Region::new(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "US-EAST-1",
        "us_east_1",
        "us-east-1.x",
        "us-east-1 ",
        "-us",
        "aws-global",
        "aws-cn-global",
        "fips-us-east-1",
        "us-east-1-fips",
    ] {
        assert!(Region::new(bad).is_err(), "{bad}");
    }
}

#[test]
fn regions_fall_in_their_partition() {
    let partition = |r: &str| Region::new(r).unwrap().partition();
    assert_eq!(partition("us-east-1"), Partition::Aws);
    assert_eq!(partition("mx-central-1"), Partition::Aws);
    assert_eq!(partition("cn-northwest-1"), Partition::AwsCn);
    assert_eq!(partition("us-gov-west-1"), Partition::AwsUsGov);
    assert_eq!(partition("us-iso-east-1"), Partition::AwsIso);
    assert_eq!(partition("us-isob-east-1"), Partition::AwsIsoB);
    assert_eq!(partition("eu-isoe-west-1"), Partition::AwsIsoE);
    assert_eq!(partition("us-isof-south-1"), Partition::AwsIsoF);
    assert_eq!(partition("eusc-de-east-1"), Partition::AwsEusc);
    assert_eq!(partition("zz-unknown-9"), Partition::Aws);
    assert_eq!(partition("garage"), Partition::Aws);
}

#[test]
fn aws_urls_are_regional_and_virtual_hosted_where_possible() {
    let aws = Addressing::aws();
    assert_eq!(
        url(&aws, "us-east-1", "bkt").unwrap(),
        "https://bkt.s3.us-east-1.amazonaws.com/"
    );
    assert_eq!(
        url(&aws, "us-east-1", "my.bkt").unwrap(),
        "https://s3.us-east-1.amazonaws.com/my.bkt"
    );
    assert_eq!(
        url(&aws, "us-east-1", "Bkt").unwrap(),
        "https://s3.us-east-1.amazonaws.com/Bkt"
    );
    assert_eq!(
        url(&aws.clone().force_path_style(true), "eu-west-1", "bkt").unwrap(),
        "https://s3.eu-west-1.amazonaws.com/bkt"
    );
    assert_eq!(
        url(
            &aws.clone().fips(true).dual_stack(true),
            "us-gov-west-1",
            "bkt"
        )
        .unwrap(),
        "https://bkt.s3-fips.dualstack.us-gov-west-1.amazonaws.com/"
    );
    assert_eq!(
        url(
            &aws.clone().accelerate(true).dual_stack(true),
            "us-west-2",
            "bkt"
        )
        .unwrap(),
        "https://bkt.s3-accelerate.dualstack.amazonaws.com/"
    );
    assert_eq!(
        url(&aws, "cn-north-1", "bkt").unwrap(),
        "https://bkt.s3.cn-north-1.amazonaws.com.cn/"
    );
}

#[test]
fn impossible_aws_combinations_are_refused() {
    let aws = Addressing::aws();
    assert!(url(&aws.clone().accelerate(true).fips(true), "us-east-1", "bkt").is_err());
    assert!(url(&aws.clone().accelerate(true), "us-east-1", "my.bkt").is_err());
    assert!(
        url(
            &aws.clone().accelerate(true).force_path_style(true),
            "us-east-1",
            "bkt"
        )
        .is_err()
    );
    assert!(url(&aws.clone().accelerate(true), "cn-north-1", "bkt").is_err());
    assert!(url(&aws.clone().fips(true), "cn-north-1", "bkt").is_err());
}

#[test]
fn custom_endpoints_keep_their_base_path() {
    let custom = |u: &str| Addressing::custom(Endpoint::parse(u).unwrap());
    assert_eq!(
        url(&custom("http://127.0.0.1:9000/s3"), "us-east-1", "bkt").unwrap(),
        "http://127.0.0.1:9000/s3/bkt"
    );
    assert_eq!(
        url(&custom("http://[::1]:9000"), "us-east-1", "bkt").unwrap(),
        "http://[::1]:9000/bkt"
    );
    assert_eq!(
        url(&custom("http://localhost:9000"), "us-east-1", "bkt").unwrap(),
        "http://bkt.localhost:9000/"
    );
    assert_eq!(
        url(
            &custom("https://MinIO.example.com:443/s3"),
            "us-east-1",
            "bkt"
        )
        .unwrap(),
        "https://bkt.minio.example.com/s3"
    );
    assert_eq!(
        url(&custom("http://minio.example.com"), "us-east-1", "abc.def").unwrap(),
        "http://abc.def.minio.example.com/"
    );
    assert_eq!(
        url(&custom("https://minio.example.com"), "us-east-1", "abc.def").unwrap(),
        "https://minio.example.com/abc.def"
    );
    assert_eq!(
        url(
            &custom("http://minio.example.com/").force_path_style(true),
            "us-east-1",
            "bkt"
        )
        .unwrap(),
        "http://minio.example.com/bkt"
    );
}

#[test]
fn custom_endpoints_refuse_aws_only_options_and_odd_urls() {
    let endpoint = Endpoint::parse("http://127.0.0.1:9000").unwrap();
    for addressing in [
        Addressing::custom(endpoint.clone()).dual_stack(true),
        Addressing::custom(endpoint.clone()).fips(true),
        Addressing::custom(endpoint).accelerate(true),
    ] {
        assert!(
            addressing
                .check(&Region::new("us-east-1").unwrap())
                .is_err()
        );
    }
    for bad in [
        "minio.example.com",
        "ftp://x",
        "http://x/?a=1",
        "http://x/#f",
        "http://u:p@x/",
        "file:///tmp",
    ] {
        assert!(Endpoint::parse(bad).is_err(), "{bad}");
    }
}

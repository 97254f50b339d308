'natRules' => [
    'node-a' => [
        'enableNat' => ['IPv4', 'IPv6']
    ],
],


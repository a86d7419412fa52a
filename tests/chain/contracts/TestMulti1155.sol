// SPDX-License-Identifier: Apache-2.0
// A minimal ERC-1155 for the NFT-gate tests: balanceOf(account, id), mint by
// the deployer, and safeTransferFrom by the holder (to externally owned
// accounts; no receiver hooks are needed for test wallets).
pragma solidity ^0.8.20;

contract TestMulti1155 {
    event TransferSingle(
        address indexed operator, address indexed from, address indexed to, uint256 id, uint256 value
    );

    address private immutable minter;
    mapping(uint256 => mapping(address => uint256)) private balances;

    constructor() {
        minter = msg.sender;
    }

    function supportsInterface(bytes4 id) external pure returns (bool) {
        return id == 0xd9b67a26 || id == 0x01ffc9a7;
    }

    function balanceOf(address account, uint256 id) external view returns (uint256) {
        require(account != address(0), "ERC1155: zero address");
        return balances[id][account];
    }

    function mint(address to, uint256 id, uint256 amount) external {
        require(msg.sender == minter, "only the minter");
        balances[id][to] += amount;
        emit TransferSingle(msg.sender, address(0), to, id, amount);
    }

    function safeTransferFrom(address from, address to, uint256 id, uint256 amount, bytes calldata) external {
        require(msg.sender == from, "not the holder");
        require(balances[id][from] >= amount, "insufficient balance");
        balances[id][from] -= amount;
        balances[id][to] += amount;
        emit TransferSingle(msg.sender, from, to, id, amount);
    }
}

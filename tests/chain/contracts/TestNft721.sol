// SPDX-License-Identifier: Apache-2.0
// A minimal ERC-721 for the NFT-gate tests: the calls the gate makes
// (ownerOf, balanceOf) behave as the standard says, including the revert of
// ownerOf for a token that does not exist.
pragma solidity ^0.8.20;

contract TestNft721 {
    event Transfer(address indexed from, address indexed to, uint256 indexed tokenId);

    address private immutable minter;
    mapping(uint256 => address) private owners;
    mapping(address => uint256) private balances;

    constructor() {
        minter = msg.sender;
    }

    function supportsInterface(bytes4 id) external pure returns (bool) {
        return id == 0x80ac58cd || id == 0x01ffc9a7;
    }

    function ownerOf(uint256 tokenId) public view returns (address) {
        address owner = owners[tokenId];
        require(owner != address(0), "ERC721: invalid token ID");
        return owner;
    }

    function balanceOf(address owner) external view returns (uint256) {
        require(owner != address(0), "ERC721: zero address");
        return balances[owner];
    }

    function mint(address to, uint256 tokenId) external {
        require(msg.sender == minter, "only the minter");
        require(owners[tokenId] == address(0), "already minted");
        owners[tokenId] = to;
        balances[to] += 1;
        emit Transfer(address(0), to, tokenId);
    }

    function transferFrom(address from, address to, uint256 tokenId) external {
        require(ownerOf(tokenId) == from && msg.sender == from, "not the owner");
        require(to != address(0), "zero address");
        balances[from] -= 1;
        balances[to] += 1;
        owners[tokenId] = to;
        emit Transfer(from, to, tokenId);
    }
}
